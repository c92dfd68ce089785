"""The EBS direct upload against boto3's managed S3 upload, both to one moto server.

    .venv/bin/python bench/publish.py [--size-gib 1] [--fraction 0.25] [--runs 3]
                                      [--scale 1,2,4]

For a sparse raw image that is `--fraction` data (scattered in 16 regions):
- `builder.publish.ebs_upload.upload` (what `builder publish` runs): only the blocks
  holding data, 16 in flight, each with its SHA-256;
- boto3's `upload_file` of the whole file to S3 (multipart, 10 threads: the
  first step of VM Import, which needs the image in S3);
medians of --runs each, bytes sent, the ratio of wall times; then the EBS
upload's median time for images of --scale GiB at the same data fraction.
moto is reset between runs so it holds one upload at a time; one untimed
warm-up run of each comes first. Both go over
HTTP on loopback: the numbers compare bytes moved and requests made, not
AWS's network.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.publish.aws import Aws, AwsSettings
from builder.publish.ebs_upload import upload
from tests.integration.awsemu import (
    CREDENTIALS,
    MotoServer,
    client,
    scattered,
    sparse_image,
)

GIB = 1024**3
MIB = 1024**2


def ebs_once(moto: MotoServer, image: Path) -> tuple[float, int]:
    moto.reset()
    aws = Aws(AwsSettings(region="us-east-1", endpoint_url=moto.url))
    started = time.perf_counter()
    done = upload(aws, "us-east-1", image, tags={"bench": "1"}, description="bench")
    return time.perf_counter() - started, done.bytes_sent


def s3_once(moto: MotoServer, image: Path) -> tuple[float, int]:
    from boto3.s3.transfer import TransferConfig

    moto.reset()
    s3 = client("s3", "us-east-1", moto.url)
    s3.create_bucket(Bucket="bench")
    config = TransferConfig(
        multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=10
    )
    started = time.perf_counter()
    s3.upload_file(str(image), "bench", "image.raw", Config=config)
    elapsed = time.perf_counter() - started
    return elapsed, int(s3.head_object(Bucket="bench", Key="image.raw")["ContentLength"])


def make_image(directory: Path, size_gib: float, fraction: float) -> Path:
    size = int(size_gib * GIB)
    image = directory / f"bench-{size_gib}g.raw"
    sparse_image(image, size, scattered(size, int(size * fraction), 16))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", default="1,2,4", help="image sizes in GiB for the scaling")
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    os.environ.setdefault("BUILDER_PROGRESS_INTERVAL", "3600")
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as scratch:
        directory = Path(scratch)
        moto = MotoServer(directory / "moto.log")
        try:
            image = make_image(directory, args.size_gib, args.fraction)
            print(f"image: {args.size_gib:g} GiB, {args.fraction:.0%} data, {args.runs} runs each")
            ebs_once(moto, image)  # warm-up, untimed: clients, moto's backends
            s3_once(moto, image)
            ebs = [ebs_once(moto, image) for _ in range(args.runs)]
            s3 = [s3_once(moto, image) for _ in range(args.runs)]
            ebs_median = statistics.median(t for t, _ in ebs)
            s3_median = statistics.median(t for t, _ in s3)
            print(
                f"ebs direct  sent {ebs[0][1] / MIB:8.1f} MiB  median {ebs_median:6.2f} s  "
                f"runs {' '.join(f'{t:.2f}' for t, _ in ebs)}"
            )
            print(
                f"s3 upload   sent {s3[0][1] / MIB:8.1f} MiB  median {s3_median:6.2f} s  "
                f"runs {' '.join(f'{t:.2f}' for t, _ in s3)}"
            )
            print(f"ratio (s3 / ebs direct wall time): {s3_median / ebs_median:.2f}x")
            image.unlink()
            print("scaling of the ebs direct upload, same data fraction:")
            for size in (float(s) for s in args.scale.split(",")):
                scaled = make_image(directory, size, args.fraction)
                times = [ebs_once(moto, scaled)[0] for _ in range(args.runs)]
                median = statistics.median(times)
                data = size * args.fraction * 1024
                print(
                    f"  {size:g} GiB ({data:.0f} MiB data): median {median:6.2f} s, "
                    f"{data / median:6.1f} MiB/s"
                )
                scaled.unlink()
        finally:
            moto.stop()


if __name__ == "__main__":
    main()
