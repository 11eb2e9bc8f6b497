"""unfold's benchmarks (``unfold bench``, ``python benchmarks/run.py``): kept outside the package,
they use only unfold's public modules and the catalogue's energies and references."""
