"""Intake's pure domain (no I/O, no clock, no async): the matching engine (``matching``), the
batch waiting-list assignment (``assignment``) and the episode lifecycle (``episodes``)."""
