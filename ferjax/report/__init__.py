"""The report: one self-contained HTML page that answers first, and the figures of the pipeline.

* :mod:`~ferjax.report.document`: the study's report; :mod:`~ferjax.report.sections` its sections on the
  data, the clear differences, the mixed model and faithfulness;
* :mod:`~ferjax.report.html`: its building blocks (page, tables, figures; the stylesheet is ``style.css``);
* :mod:`~ferjax.report.svg`: charts as inline SVG;
* :mod:`~ferjax.report.figures`: heat maps, overlays and contact sheets as PNG.

May import: plumbing, faces, analysis.
"""
