"""Pictures of a handshake drawn from its trace: the text sequence diagram (and, as they come,
SVG sequence and state diagrams and the step-through page). Pure functions of trace events;
they import only the protocol core (fdt, rtas, spapr), so the monitor and the command line
can both draw.
"""
