r"""ANI-style atomic environment vectors (AEVs) around points of a lattice, in torch.

An AEV describes the atoms around a reference point ``i`` (Smith, Isayev and
Roitberg, ANI-1, Chem. Sci. 2017). Here ``i`` is a point in space, a vacancy
site or the jump midpoint, never an atom. With ``R_ij`` the distance from ``i``
to neighbour ``j`` and the cosine cutoff

    f_C(R) = 0.5 cos(pi R / R_c) + 0.5   for R <= R_c,   0 otherwise,

the *radial* sub-vector of element X is

    G_m^R(X) = sum_{j in X} exp(-eta_R (R_ij - R_s,m)^2) f_C(R_ij)

and the *angular* sub-vector of the unordered element pair (X, Y) is

    G_m^A(X,Y) = 2^(1-zeta) sum_{j<k} (1 + cos(theta_ijk - theta_s))^zeta
                 exp(-eta_A ((R_ij + R_ik)/2 - R_s)^2) f_C(R_ij) f_C(R_ik),

where ``theta_ijk`` is the angle at ``i`` between ``j`` and ``k`` and the sum
runs over pairs with {species_j, species_k} = {X, Y}. **Each unordered pair of
neighbours {j, k} (j != k) is counted once**, as ANI does. The angular terms
use their own cutoff ``r_cut_angular`` (default: ``r_cut``).

Layout (the same as torchani): ``[radial | angular]``; radial blocks by element
X in species order, ``R_s`` fastest; angular blocks by element pair in
upper-triangle order (0,0), (0,1), ..., (1,1), ..., then ``R_s`` (angular
grid), then ``theta_s`` fastest. Unlike torchani, the radial terms carry no
factor 0.25 and ``theta_ijk`` is not squeezed by 0.95 (see :class:`AngularTerms`).

Modules: :mod:`~dbkmc.detailed_balance.aev.params` (:class:`AEVParams`, the
hyper-parameters), :mod:`~dbkmc.detailed_balance.aev.terms` (the per-neighbour
terms :class:`RadialTerms` and :class:`AngularTerms`, torch modules with their
parameters as buffers, and the cutoff), :mod:`~dbkmc.detailed_balance.aev.compute`
(:func:`aev`, the sums per element). The event featurizer
(:mod:`dbkmc.detailed_balance.fingerprints`) and the lattice tables
(:mod:`dbkmc.detailed_balance.lattice_aev`) both build on these terms.
"""

from dbkmc.detailed_balance.aev.compute import aev
from dbkmc.detailed_balance.aev.params import AEVParams, ani_grid, feature_labels
from dbkmc.detailed_balance.aev.terms import AngularTerms, RadialTerms, angular_pair_table, cutoff_cosine, distances

__all__ = ["AEVParams", "AngularTerms", "RadialTerms", "aev", "angular_pair_table", "ani_grid", "cutoff_cosine",
           "distances", "feature_labels"]
