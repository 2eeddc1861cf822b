"""Ground floor: metrics, checks and figures over plain arrays (numpy, scikit-learn, matplotlib).

Nothing here imports torch or any winnow package above `winnow.runs`, so `import winnow.metrics`
stays light and every layer above may use it.
"""
