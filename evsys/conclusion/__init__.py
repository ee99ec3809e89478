"""The conclusion of an experiment, a pure function of its sweep dir.

runs (read the records) -> build (ranking, comparisons; statistics) -> verdict, as a typed
`Conclusion` (model) -> render (markdown, console) and plots; write puts
conclusion.json/.md/.png and a TensorBoard run in the sweep dir. Import the submodule you
need: this package imports nothing, so reading records (evsys.conclusion.runs) or a
conclusion.json (evsys.conclusion.model) stays light.
"""
