# Runs a Python reference script with torch.compile's dynamic=False replaced by PyTorch's default (automatic
# dynamic shapes): a tensor dimension that changes between calls (#1855's cu_seqlens buckets) is then
# compiled once as symbolic instead of once per size; every other dimension stays static. #1855 otherwise
# compiles eight full graphs (four buckets, loop off and on), more than one device call can give it.
#   python3 ref_auto_dynamic.py SCRIPT.py   (the script's own environment variables as usual)
import runpy
import sys

import torch

_compile = torch.compile


def _auto_dynamic(*args, **kwargs):
    if kwargs.get("dynamic") is False:
        kwargs["dynamic"] = None
    return _compile(*args, **kwargs)


torch.compile = _auto_dynamic
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
