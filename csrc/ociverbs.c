/*
 * ociverbs.c - minirun-oci's native verbs (ociverbs.h). Until they land, none:
 * every command line goes on to Python.
 */
#include "ociverbs.h"

int oci_verbs_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return OCI_NOT_NATIVE;
}
