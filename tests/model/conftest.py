"""Model tests run TensorFlow on the CPU; keep its start-up chatter out of the test output."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
