/* The smp guest's AP trampoline, shared (guests/smp/trampoline.S). */
#include "../smp/trampoline.S"
