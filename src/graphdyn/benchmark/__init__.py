"""Benchmarks: one command that trains a grid of models x datasets x seeds and writes the
paper's comparison table (``graphdyn benchmark SPEC``).

* :mod:`graphdyn.benchmark.spec`: the YAML spec (built-in ones by name), cells and their run configs;
* :mod:`graphdyn.benchmark.published`: the ESTAG paper's Tables 1-3 as data;
* :mod:`graphdyn.benchmark.runner`: cell states, resumable parallel execution, data checks;
* :mod:`graphdyn.benchmark.cell`: the process that trains one cell;
* :mod:`graphdyn.benchmark.table`: aggregation over seeds, marks, results files and figure.
"""
