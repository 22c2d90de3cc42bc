"""Plans: what to make, from headers only; pure and printable, nothing computes here.

A set's frames verified (:mod:`.frameset`), a night grouped as soxspipe's organiser
groups it (:mod:`.night`), the names soxspipe gives things (:mod:`.names`), one product's
plan with its fingerprint and up-to-date check (:mod:`.product`), which of a night's
sets are to do (:mod:`.sets`) and how large a task is (:mod:`.sizing`). ``--dry-run``
stops here.
"""
