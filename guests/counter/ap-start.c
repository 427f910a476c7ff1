/* The smp guest's AP start-up, shared (guests/smp/ap-start.c). */
#include "../smp/ap-start.c"
