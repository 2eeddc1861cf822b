"""Tasks and heads: multiclass, binary, multilabel, and several heads on one backbone."""
