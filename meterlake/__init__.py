"""meterlake: smart-meter curves, registers, events and prepayment into a Parquet lake.

Importing the package sets the options of polars' allocator (:mod:`meterlake.allocator`)
before anything imports polars: the CLI, :mod:`meterlake.pipeline` and the Airflow tasks
(which import meterlake inside the task) all come through here.
"""

from .allocator import configure as _configure_allocator

_configure_allocator()
