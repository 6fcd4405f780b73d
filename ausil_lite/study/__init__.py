"""How the book is made: everything here serves the study's chapters, never a user's command.

The runner (``python -m ausil_lite.study``: :mod:`~ausil_lite.study.plan`, :mod:`~ausil_lite.study.runner`,
:mod:`~ausil_lite.study.watch`, :mod:`~ausil_lite.study.fingerprint`, :mod:`~ausil_lite.study.book`) turns
notebooks into executed chapters and the built book. The chapters call :mod:`~ausil_lite.study.pipeline`
(the training chapter's resumable steps), :mod:`~ausil_lite.study.method_scores` (every method scored on a
benchmark), :mod:`~ausil_lite.study.results_chapters`, :mod:`~ausil_lite.study.map_examples` and
:mod:`~ausil_lite.study.search_chapter`. :mod:`~ausil_lite.study.release` trains the released model with
the same steps on the training corpus (``make release``).
"""
