"""The conventions of the metrics, in words: what each number measures and how
edge cases count. `CONVENTIONS` is written into report.json with the numbers."""

CONVENTIONS = {
    'distance': ('d(a, b) = 1 - IoU(a, b) of the foreground (non-zero) pixels '
                 'of two binary masks, with d = 0 when both masks are empty and '
                 'd = 1 when exactly one is empty.'),
    'ged': ('GED is the squared generalised energy distance per image, '
            '2 E d(S, Y) - E d(S, S\') - E d(Y, Y\'), each expectation the mean '
            'over all N*M, N*N and M*M pairs with the diagonal (d = 0) '
            'included, so it is biased upwards by about D_ss / N + D_yy / M and '
            'only comparable at the same number of samples N; the data-set GED '
            'is the mean over images.'),
    'hm_iou': ('HM-IoU repeats the N samples and the M annotations up to '
               'lcm(N, M) masks each, finds the optimal one-to-one assignment '
               'on the cost d (scipy.optimize.linear_sum_assignment) and '
               'averages 1 - d over the lcm(N, M) matched pairs, per image.'),
    'sncc': ('S_NCC (PHiSeg) is the mean over annotations j of the Pearson '
             'correlation over pixels between E_ss = mean_i CE(mean_i p_i, p_i) '
             'and E_sy^j = mean_i CE(y_j, p_i), with '
             'CE(q, p) = -sum_c q_c log(p_c + 1e-8), p_i the softmax '
             'probabilities of sample i (background 1 - p for a foreground '
             'probability p) and y_j the one-hot annotation j.'),
    'sncc_undefined': ('A correlation is undefined when either map is constant '
                       'over the pixels (max - min <= 1e-6 * max(1, max |value|)), '
                       'an image is undefined (NaN) when any of its M '
                       'correlations is undefined, and data-set S_NCC is the mean '
                       'over defined images reported together with the number of '
                       'undefined images.'),
    'mode_assignment': ('A sample is assigned to the known mode of largest IoU '
                        '(ties to the lowest mode index, two empty masks have '
                        'IoU 1), or to an extra "unmatched" class when that IoU '
                        'is below min_iou (0.5 unless stated), and mode frequencies are compared with '
                        'the true ones by the total variation distance '
                        '0.5 * sum |p - q| including the unmatched class.'),
}
