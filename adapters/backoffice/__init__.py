"""Back offices: what the care organisation's own administration receives from the dossier.

- ``omaha``: per finished visit the Omaha System problems, interventions and KBS ratings, as
  NDJSON messages left in the gateway's outbox for a destination the operator configured
  (an HTTP endpoint or an AMQP exchange);
- ``plugin``: ``eigendossier omaha export`` and ``POST [base]/$omaha-export``.
"""
