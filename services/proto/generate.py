"""Regenerate the payments gRPC stubs: `python -m services.proto.generate` from the repository root.

grpc_tools.protoc writes `import payments_pb2 as payments__pb2` into payments_pb2_grpc.py; that only works
with services/proto on sys.path, so the import is rewritten to be package-relative afterwards.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    from grpc_tools import protoc

    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{HERE}",
            f"--python_out={HERE}",
            f"--grpc_python_out={HERE}",
            str(HERE / "payments.proto"),
        ]
    )
    if rc != 0:
        return rc
    grpc_file = HERE / "payments_pb2_grpc.py"
    text = grpc_file.read_text()
    fixed = re.sub(r"^import payments_pb2 as ", "from . import payments_pb2 as ", text, flags=re.M)
    if fixed == text:
        print("warning: generated import not found; check payments_pb2_grpc.py", file=sys.stderr)
    grpc_file.write_text(fixed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
