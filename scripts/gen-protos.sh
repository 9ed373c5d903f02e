#!/usr/bin/env bash
# Regenerate generated/python from protos/ (reproducible: pinned grpcio-tools).
set -euo pipefail
python=$1
well_known=$("$python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
out=generated/python
rm -rf "$out/pushhub"
mkdir -p "$out"
"$python" -m grpc_tools.protoc \
  -I protos -I protos/third_party/googleapis -I "$well_known" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  protos/pushhub/v1/*.proto
touch "$out/pushhub/__init__.py" "$out/pushhub/v1/__init__.py" "$out/pushhub/py.typed"
