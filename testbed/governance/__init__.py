"""Data governance: artifact classes and tags, the one egress gate, clearances, the audit log.

Every path that copies an artifact out of a site's store asks `EgressGate.check`; the gate
applies the site's ``governance:`` rules (site.yaml, `envs.factory.governance`), accepts a
clearance the site's operator wrote, and appends every decision to the site's hash-chained
audit log (`testbed.governance.audit`). Guide: docs/governance.md (engineering support, not
legal advice).
"""
