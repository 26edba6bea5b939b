"""What a run leaves: its directory (``rundir``), the JSON report and verdict (``report``), and
TensorBoard events (``tensorboard``, ``events``)."""
