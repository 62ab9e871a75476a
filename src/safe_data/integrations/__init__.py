"""Integrations with other libraries, each an optional extra imported on demand.

``safe_data.integrations.sqlalchemy`` (extra ``safe_data[sqlalchemy]``) journals the
rows a SQLAlchemy session deletes or overwrites.  This package imports nothing, so that
``import safe_data`` never loads a library it does not need.
"""
