/* nosym.c - a fixture shared object that is no kpool plugin: it lacks the kpool_plugin symbol. */
int nosym_answer(void);

int nosym_answer(void)
{
	return 42;
}
