"""Migration: the stream, the hotplug vmstate it carries, save and replay on a target.

Below the monitor: the monitor's ``migrate`` commands and the command line's
``-incoming`` call into ``replay``.
"""
