"""Readers and writers of camera files, one module per format; :mod:`worldwarp.trajectory.io` picks one."""
