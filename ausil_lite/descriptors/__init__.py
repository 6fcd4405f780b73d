"""From a video file to the descriptors the similarity network compares, in the order data flows.

:mod:`~ausil_lite.descriptors.audio` decodes and resamples any container's audio track,
:mod:`~ausil_lite.descriptors.spectrogram` cuts it into log-mel segments, :mod:`~ausil_lite.descriptors.backbone`
runs the CNN and pools MAC descriptors from its intermediate layers (:mod:`~ausil_lite.descriptors.precision`:
the bfloat16 fast network), :mod:`~ausil_lite.descriptors.whitening` and :mod:`~ausil_lite.descriptors.attention`
are the AuSiL network's first trained layers, and :mod:`~ausil_lite.descriptors.speeds` makes speed-changed
variants. :mod:`~ausil_lite.descriptors.extraction` ties these together for one file and
:mod:`~ausil_lite.descriptors.store` keeps a resumable feature store of many; :mod:`~ausil_lite.descriptors.video_list`
reads the original's ``id path`` lists and :mod:`~ausil_lite.descriptors.npy_files` a user's own ``.npy`` descriptors.
"""
