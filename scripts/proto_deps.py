"""Copy google/rpc/*.proto from the installed googleapis-common-protos package.

protoc and buf need the .proto sources of google.rpc.Status and friends; the
wheel ships them, so we point the tools at that copy instead of vendoring it.
"""

import shutil
import sys
from pathlib import Path

import google.rpc.status_pb2


def main(target: str) -> None:
    source = Path(google.rpc.status_pb2.__file__).parent
    destination = Path(target) / "google" / "rpc"
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("status.proto", "error_details.proto", "code.proto"):
        shutil.copyfile(source / name, destination / name)


if __name__ == "__main__":
    main(sys.argv[1])
