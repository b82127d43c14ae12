"""`make bench`: run every benchmark module's main()."""

from bench import engine_bench

for module in (engine_bench,):
    module.main()
