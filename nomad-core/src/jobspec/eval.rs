//! HCL2 evaluation: variables, locals and functions, leaving runtime interpolations verbatim.
