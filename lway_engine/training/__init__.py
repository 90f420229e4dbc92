"""Step 1 of LWay, LR reconstruction pretraining: the training loop for E and R (``pretrain.py``) and the pairs it
learns from, synthetic and real (``data.py``). Step 2, adaptation, lives in ``lway_engine/adaptation/``."""
