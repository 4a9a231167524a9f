"""Tables and figures of the paper reproductions, with the paper's numbers alongside.

``tables`` turns prediction files (data contract format 5) into the rejection and
robustness tables (RS3L Tables II-V) as CSV + Markdown; ``figures`` draws the RS3L figures
(ROC, pre-training history, t-SNE, corner plot, score ratios) as PNG + PDF. Submodules are
not imported here so that writing a table never pulls in matplotlib or scikit-learn.
"""
