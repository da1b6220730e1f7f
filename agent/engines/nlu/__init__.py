"""Understanding a caller's words: intent classifier, language, entities and triage.

``Understander`` (in ``pipeline``) is what the dialog uses; ``classifier`` holds the spaCy intent
model that ``medagent nlu train`` builds from ``data/``. Submodules are imported on use so that
importing this package does not load spaCy.
"""
