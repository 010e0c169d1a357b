"""Search: parameters from the official R4 definitions, indexed on write, compiled to SQL.

``registry`` (which parameters), ``paths`` (evaluating their expressions), ``extract``
(index rows), ``params`` (parsing a request), ``compile`` (SQL predicates, with the access
filter applied to every sub-query), ``execute`` (one query per page, plus includes).
"""
