"""What `spark-submit` needs on a cluster, in one folder: the code as a zip for `--py-files`
(common/, streaming/, jobs/) and the jar list for `--jars` (Delta and the Kafka source, as
`make setup` fetched them), one comma-separated line in spark-jars.txt.
Usage: python jvm/build_dist.py <out_dir>   (make dist also builds a wheel beside them)
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "streaming", "jobs")


def build_zip(out_dir: Path) -> Path:
    path = out_dir / "cryptobot.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in PACKAGES:
            for source in sorted((PROJECT_ROOT / package).rglob("*.py")):
                archive.write(source, source.relative_to(PROJECT_ROOT))
    return path


def write_jar_list(out_dir: Path) -> Path:
    jars = sorted(str(jar) for jar in (PROJECT_ROOT / "jars" / "spark").glob("*.jar"))
    if not jars:
        raise SystemExit("no jars in jars/spark: run `make setup` first")
    path = out_dir / "spark-jars.txt"
    path.write_text(",".join(jars) + "\n")
    return path


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in (build_zip(out), write_jar_list(out)):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dist")
