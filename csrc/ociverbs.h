/*
 * ociverbs.h - the verbs of minirun-oci that run without starting Python.
 *
 * The native front (front.c) calls this first with its own argc/argv. The
 * result is the process's exit status, or OCI_NOT_NATIVE when the command
 * line is one Python handles (create, exec, update, run ...): the front then
 * execs the interpreter with the same arguments.
 */
#ifndef MINIRUN_OCIVERBS_H
#define MINIRUN_OCIVERBS_H

#define OCI_NOT_NATIVE (-2)

int oci_verbs_main(int argc, char **argv);

#endif
