//! The task environment (`NOMAD_*`) and `${...}` interpolation.
