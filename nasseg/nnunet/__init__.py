"""nnU-Net v2 interoperability: train a nasseg network inside nnU-Net's pipeline.

- :mod:`nasseg.nnunet.network`: :class:`NassegUNet`, the class an nnU-Net plans file names
  (``network_class_name: nasseg.nnunet.network.NassegUNet``); it imports only nasseg and torch.
- :mod:`nasseg.nnunet.export`: ``nasseg export RUN|STUDY#N --format nnunet`` (the plans
  ``architecture`` entry, and a complete plans file from nnU-Net's own).

nnU-Net raw datasets are read by :mod:`nasseg.data.nnunet_raw` (data kind ``nnunet``).
"""
