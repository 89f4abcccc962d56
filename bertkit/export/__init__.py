"""ONNX export, the parity checks that prove an export right, and the runtimes that run one."""
