"""protoc plugin: grpcio-tools' python, pyi and grpc_python generators, for buf.

buf.gen.yaml runs this as a local plugin. buf cannot run grpc_python as a
protoc built-in (only grpcio-tools' protoc has it), and buf hands generators
descriptors with every json_name filled in, which protoc leaves unset when it
reads .proto sources; the serialized descriptors in the _pb2.py files would
then differ. So this plugin clears each json_name that only restates the
default, runs grpcio-tools' protoc (pinned in pyproject) on the descriptors,
and adds the package markers, writing the files `make proto` always wrote.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def default_json_name(field_name: str) -> str:
    """protoc's default: underscores dropped, the letter after each one capitalised."""
    head, *rest = field_name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def clear_default_json_names(message: descriptor_pb2.DescriptorProto) -> None:
    for field in [*message.field, *message.extension]:
        if field.json_name == default_json_name(field.name):
            field.ClearField("json_name")
    for nested in message.nested_type:
        clear_default_json_names(nested)


def as_parsed_from_source(files: list[descriptor_pb2.FileDescriptorProto]) -> bytes:
    descriptors = descriptor_pb2.FileDescriptorSet(file=files)
    for file in descriptors.file:
        for message in file.message_type:
            clear_default_json_names(message)
        for extension in file.extension:
            if extension.json_name == default_json_name(extension.name):
                extension.ClearField("json_name")
    return descriptors.SerializeToString()


def package_markers(generated: list[str]) -> list[str]:
    """An __init__.py in every generated folder, and py.typed at each top package."""
    folders = {parent for name in generated for parent in Path(name).parents if parent.parts}
    tops = {folder for folder in folders if len(folder.parts) == 1}
    return sorted(
        [str(folder / "__init__.py") for folder in folders]
        + [str(top / "py.typed") for top in tops]
    )


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as workdir:
        descriptor_set = Path(workdir) / "input.binpb"
        descriptor_set.write_bytes(as_parsed_from_source(list(request.proto_file)))
        out = Path(workdir) / "out"
        out.mkdir()
        code = protoc.main(
            [
                "protoc",
                f"--descriptor_set_in={descriptor_set}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *request.file_to_generate,
            ]
        )
        if code != 0:
            response.error = f"grpcio-tools protoc exited with {code}"
            return response
        generated = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        for name in generated:
            response.file.add(name=name, content=(out / name).read_text())
    for marker in package_markers(generated):
        if marker not in generated:
            response.file.add(name=marker, content="")
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
