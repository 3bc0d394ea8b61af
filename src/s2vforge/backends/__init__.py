"""Model-backed capabilities, each with embedded / reference / endpoint backends."""
import os

# MediaPipe's C++ core logs INFO/WARNING lines through glog on every graph start; keep the CLI readable.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
