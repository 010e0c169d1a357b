"""Declarations: the client's visits become the files Dutch payers accept.

``wmo323``: the iWmo 3.2 declaratie (WMO323) to a municipality: a message model, the XML
writer, and the checks the municipality will make (the vendored XSD and the message rules
of the iWmo validation, controleniveau 2).
"""
