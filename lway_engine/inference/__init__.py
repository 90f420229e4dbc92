"""Running an SR model on images: seamless tiling (``tiles.py``), ``Upscaler``, the class apps embed, which picks
PyTorch, ONNX Runtime, OpenVINO or TensorRT by file type (``upscaler.py``; the runtimes are ``lway_engine.backends``),
and the ``upscale`` command's file pipeline (``upscale.py``)."""
