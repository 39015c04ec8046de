"""ptycho benchmarks: speed, memory and quality on this machine, against baselines measured in the
same run (ratios, not absolute times). Run from the repository root::

    .venv/bin/python -m benchmarks [--quick] [--only sim,train,cluster,infer,quality,sweep] [--out DIR]

See ``benchmarks/README.md``.
"""
