# What vulture cannot see used in auditimds/rules/: one entry a line, the name and why it stays.
_.description  # Rule: the rule file's description, kept with its metadata (tests/rules/test_rule_loader.py)
_.language  # Rule: the rule file's query language, checked to be "eql" when loaded, kept with its metadata
_.references  # Rule: the rule file's references, kept with its metadata (tests/rules/test_rule_loader.py)
_.__eql_source__  # the generated source of a compiled predicate, for debugging (tests/rules/eql/test_predicates.py)
