"""Entry points: the cryptobot command and one spark-submit file per job, each parsing its arguments and
calling one stage; the top layer, imported by nothing but the benchmarks."""
