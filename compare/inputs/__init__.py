"""What a run starts from: its configuration (``config``), the data and weights it is prepared with
(``prepare``, ``data``, ``npz``), seeds, devices and data-parallel membership (``world``)."""
