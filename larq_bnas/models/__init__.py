"""Every architecture family, as typed configs that build ``tf.keras.Model`` objects.

- ``larq_bnas.models.bnas``: the BNAS binary layer set (``ops``), genotypes, the cell
  and the network with its one cell schedule (``schedule``);
- ``larq_bnas.models.meliusnet``: MeliusNet (Dense and Improvement blocks) and the
  MeliusNet paper's naive baseline;
- ``larq_bnas.models.xnor``: the hand-crafted XNOR-Net baselines of the BNAS paper.

The zoo (``larq_bnas.zoo``) names configurations of these families and loads weights.
"""
