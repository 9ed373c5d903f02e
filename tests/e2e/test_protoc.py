"""A client author's view: protoc and the repository's proto folders are enough.

protoc here is grpcio-tools' build of it, which like any protoc install knows
the well-known types (google/protobuf/*) and nothing else: google/rpc must
come from protos/third_party/googleapis.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from tests.e2e.conftest import REPO

INCLUDE_ROOTS = ("protos", "protos/third_party/googleapis")
CONTRACT = sorted(str(p.relative_to(REPO)) for p in (REPO / "protos/pushhub/v1").glob("*.proto"))


def protoc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"-I{root}" for root in INCLUDE_ROOTS),
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_descriptor_set_from_the_proto_folders(tmp_path: Path) -> None:
    out = tmp_path / "contract.protoset"
    done = protoc("--include_imports", f"--descriptor_set_out={out}", *CONTRACT)
    assert done.returncode == 0, done.stderr
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    names = {file.name for file in files}
    assert {f"pushhub/v1/{Path(p).name}" for p in CONTRACT} | {"google/rpc/status.proto"} <= names
    for file in files:
        if file.package == "pushhub.v1":
            assert file.options.go_package and file.options.java_package, file.name


def test_typescript_from_protoc_matches_the_committed_stubs(
    tmp_path: Path, ts_example: Path
) -> None:
    """protoc with protoc-gen-es writes what `make proto` (buf) committed."""
    plugin = ts_example / "node_modules" / ".bin" / "protoc-gen-es"
    done = protoc(
        f"--plugin=protoc-gen-es={plugin}",
        f"--es_out={tmp_path}",
        "--es_opt=target=ts,import_extension=js",
        *CONTRACT,
        "google/rpc/status.proto",
    )
    assert done.returncode == 0, done.stderr
    committed = ts_example / "src" / "gen"
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.ts"))
    assert written == sorted(p.relative_to(committed) for p in committed.rglob("*.ts"))
    for name in written:
        assert (tmp_path / name).read_text() == (committed / name).read_text(), name
