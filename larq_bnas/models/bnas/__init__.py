"""BNAS (Kim et al., ECCV 2020): the binary layer set, genotypes, cells and networks.

- ``ops``: the layer set (binary conv / dilated conv 3x3 and 5x5, max/avg pool, Zeroise);
- ``genotypes``: cell descriptions and the paper's searched cells;
- ``cells``: the cell template with inter-cell skip connections;
- ``schedule``: where reductions and inter-cell skips fall, shared with the search;
- ``network``: ``BNASConfig`` and the stacked network for any budget.
"""
