"""The FHIR interactions, framework-free: ``FhirRequest`` in, ``FhirResponse`` out.

Routes and Bundle entries alike go through :func:`gateway.interactions.dispatch.dispatch`.
Interactions take a :class:`~gateway.interactions.model.Context` (services and the
caller's access filter) and a store session; they never import the HTTP framework.
"""
