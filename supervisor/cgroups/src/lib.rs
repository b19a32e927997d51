//! Cgroups on pure v1, hybrid and pure v2 hosts, behind one trait.
