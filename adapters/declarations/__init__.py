"""Declarations: the client's visits become the files Dutch payers accept.

- ``month``: one month of one funding stream read from the dossier and summed into lines;
  the plan against the lines declared before (new, unchanged, credit and debit, held);
- ``declare``: one validated message per payer, the files, the Claims and the access log;
  reading an answer; the status per payer;
- ``wmo323`` / ``wmo325``: the iWmo 3.2 declaratie to a municipality (model, streamed XML
  writer, the vendored XSD and the message rules of the iWmo validation) and its answer;
- ``aw319``: the Vektis AW319 v1.4 fixed-width file, its layout a table (mappings.nl);
- ``gds801``: the Vektis GDS801 for GGZ, unverified against Vecozo (no public XSD);
- ``cli`` / ``plugin``: ``eigendossier declare ...`` and ``POST [base]/$declare``, joined
  to the gateway through the entry point ``eigendossier.plugins`` (ADR 0012).

See docs/declarations.md for the formats, their sources and what is verified.
"""
