"""The LEARN model: frozen content encoder, twin towers, loss, checkpoints and ONNX export.

Modules import lazily on purpose (``from shared.model.towers import LearnModel``): the content
encoder pulls in ``transformers``, which the tower-only consumers (serving) do not need.
"""
