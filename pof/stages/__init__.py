"""The analysis, one step a module, in the order a photo goes through them.

``load`` (decode, orient, bound the pixels) -> ``restore`` (undo heavy JPEG blocking) ->
``detect`` (MTCNN boxes and five points) -> ``landmarks`` (dlib's 68 points) -> ``align``
(the 200 x 280 crop and the recognizers' chips) -> ``quality`` (pose, blur, size) -> ``embed``
(descriptors) -> ``attributes`` (the 73 estimates), and ``select`` (which face of a photo is its
subject). A stage knows nothing of datasets, searches or people; ``pof.pipeline`` runs them in
order on the CPU and ``pof.gpu`` in batches on a device.
"""
